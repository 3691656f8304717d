"""PEA inside other people's trainers: `pea_deploy.integrations.ultralytics` (extra `ultralytics`).

Each integration imports its trainer lazily, on use, so this package costs nothing where the
trainer is not installed."""
