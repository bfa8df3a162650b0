print("kerf")
