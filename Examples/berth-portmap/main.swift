print("berth-portmap: not implemented yet")
