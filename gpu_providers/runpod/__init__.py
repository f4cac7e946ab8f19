"""RunPod provider (generated wire client in _generated/)."""
