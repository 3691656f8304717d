"""pea-deploy: train with Progressive Ensemble Activations, ship a ReLU-only network.

The library API a training loop needs lives in `pea_deploy.pea`; it is re-exported here lazily so
that importing the package (and every command's --help) does not pay for importing torch.
"""

__version__ = "0.1.0"

_PEA_API = ("AlphaSchedule", "AlphaScheduler", "StochasticEnsemble", "WeightedEnsemble", "alpha_at",
            "alphas", "convert", "conversion_summary", "describe_conversion", "ensembles", "require_alpha_one",
            "set_alpha", "strip", "relufy", "hard_swap", "Relufier")
_LAZY_API = {"recalibrate_bn": "pea_deploy.train.bn", "distillation_loss": "pea_deploy.train.distill",
              "output_distillation": "pea_deploy.train.distill", "export_model": "pea_deploy.export",
              "PEACallback": "pea_deploy.lightning_callback"}
__all__ = ["__version__", *_PEA_API, *_LAZY_API]


def __getattr__(name):
    if name in _PEA_API:
        from . import pea

        return getattr(pea, name)
    if name in _LAZY_API:
        import importlib

        return getattr(importlib.import_module(_LAZY_API[name]), name)
    raise AttributeError(f"module 'pea_deploy' has no attribute {name!r}")
