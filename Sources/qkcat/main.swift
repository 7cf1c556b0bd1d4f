print("qkcat")
