"""Few-shot policies from demos: behaviour cloning and reward-weighted regression on frozen embeddings.

Example:
    >>> from vip_rl.encoders import load_encoder                                    # doctest: +SKIP
    >>> from vip_rl.policies import PolicyDataset, RWRConfig, train_rwr, evaluate_policy, save_policy
    >>> encoder = load_encoder("td-sim")                                          # doctest: +SKIP
    >>> data = PolicyDataset.from_file("demos.h5", encoder, goal="final")          # doctest: +SKIP
    >>> result = train_rwr(RWRConfig(temperature=0.5), data, seed=0, encoder="td-sim")  # doctest: +SKIP
    >>> evaluate_policy(result.policy, "vip_envs/PressButton-v0", episodes=20, seed=1000, encoder=encoder)  # doctest: +SKIP
"""
from .dataset import PolicyDataset, encoder_fingerprint, read_demo_file
from .evaluate import evaluate_policy
from .networks import Policy, PolicyConfig, PolicyEnsemble, load_policy, save_policy
from .trainers import PROPRIO_INDICES, BCConfig, RWRConfig, TrainResult, rwr_weights, train_bc, train_rwr

__all__ = [
    "PolicyDataset", "encoder_fingerprint", "read_demo_file", "evaluate_policy", "Policy", "PolicyConfig",
    "PolicyEnsemble", "load_policy", "save_policy", "PROPRIO_INDICES", "BCConfig", "RWRConfig", "TrainResult", "rwr_weights", "train_bc", "train_rwr",
]
