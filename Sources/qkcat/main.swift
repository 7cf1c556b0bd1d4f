import QKCommands

QKCat.root.main()
