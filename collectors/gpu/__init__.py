"""GPU utilisation: dcgm-exporter scrapes and the NVML sampler."""
