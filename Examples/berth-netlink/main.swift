print("berth-netlink: not implemented yet")
