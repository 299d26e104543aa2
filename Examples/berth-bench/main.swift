print("berth-bench: not implemented yet")
