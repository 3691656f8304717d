"""The differential check of pea-verify-ops against Arm's Vela: a tool about the checker, not the checker.

`probe_models` writes single-op int8/int16 TFLite models (with `tflite_writer`, LiteRT's schema, no
converter), `probe_networks` small multi-op torch blocks converted by pea-export's TFLite path, and
`vela` compiles each with Vela and compares Vela's NPU/CPU placement with pea-verify-ops' verdict:

    python -m pea_deploy.agreement [PROFILE ...]   # ethos-u55 by default; prints the agreement table

Nothing in `pea_deploy.verify` imports this package.
"""
