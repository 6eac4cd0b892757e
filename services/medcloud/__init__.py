"""medcloud: the control plane of a regional healthcare hybrid cloud (T/GYJS 003-2022)."""
