print("berth-layers: not implemented yet")
