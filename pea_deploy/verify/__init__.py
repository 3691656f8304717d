"""The accelerator op checker: profiles, model readers, hardware rules and reports."""

from .check import ModelReport, exit_code, verify_model, verify_models
from .profile import Profile, builtin_profiles, load_profile, load_profile_file

__all__ = ["ModelReport", "exit_code", "verify_model", "verify_models", "Profile", "builtin_profiles",
           "load_profile", "load_profile_file"]
