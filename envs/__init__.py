"""vip_envs: the MuJoCo tabletop manipulation suite."""
