"""Machine description printed and stored with every benchmark result."""

import os
import platform

import tensorflow as tf


def machine_info() -> dict:
  """CPU model, cores, Python and TensorFlow versions."""
  cpu = platform.processor() or "unknown"
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  return {
      "cpu": cpu,
      "cores": os.cpu_count(),
      "python": platform.python_version(),
      "tensorflow": tf.__version__,
  }
