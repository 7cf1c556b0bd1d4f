print("qkbench")
