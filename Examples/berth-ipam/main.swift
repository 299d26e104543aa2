print("berth-ipam: not implemented yet")
