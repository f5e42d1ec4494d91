"""textgym: token-by-token text generation as a batched Gymnasium environment.

Importing the package registers ``textgym/TokenGen-v0`` (single env: :class:`TokenEnv`;
vector entry point: :class:`TokenVecEnv`) and ``textgym/Infill-v0`` (MaskGAN's in-filling task,
:mod:`textgym.infill`).
"""
import gymnasium as gym

import textgym.classes  # noqa: F401  (registers the "oracle-classes" data set and labelled files with resolve_data)
from textgym.data import Corpus, OracleData, TextData, Vocab, data_dir, resolve_data
from textgym.env import TokenEnv, TokenVecEnv
from textgym.oracle import OracleLSTM
from textgym.rewards import TRANSFORMS, DenseReward, MCReward, Reward, TerminalReward, make_reward
from textgym.scorers import OracleScorer

__version__ = "0.1.0"
ENV_ID = "textgym/TokenGen-v0"
INFILL_ENV_ID = "textgym/Infill-v0"

if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point="textgym.env:TokenEnv", vector_entry_point="textgym.env:TokenVecEnv")
if INFILL_ENV_ID not in gym.registry:
    gym.register(INFILL_ENV_ID, entry_point="textgym.infill:InfillEnv", vector_entry_point="textgym.infill:InfillVecEnv")

__all__ = [
    "ENV_ID", "INFILL_ENV_ID", "Corpus", "DenseReward", "MCReward", "OracleData", "OracleLSTM", "OracleScorer", "Reward",
    "TRANSFORMS", "TerminalReward", "TextData", "TokenEnv", "TokenVecEnv", "Vocab", "data_dir",
    "make_reward", "resolve_data",
]
