"""Values whose translation depends on how the function uses them (a device only passed to torch's `device=`)."""
