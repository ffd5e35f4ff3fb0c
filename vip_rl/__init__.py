"""vip-rl: VIP and LIV value representations as rewards, planners and policies."""

__version__ = "0.1.0"
