print("berth-cgroups: not implemented yet")
