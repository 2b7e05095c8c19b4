"""Code shared by the Piper and Flexiv clients: robot/camera interfaces, safety, rotations, recording, policy loop."""
