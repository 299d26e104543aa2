print("berth-ns: not implemented yet")
