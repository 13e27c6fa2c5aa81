"""The device daemon."""

import sys
import warnings

if sys.version_info < (3, 9):
    # JetPack 5 is Python 3.8 for good (TensorRT's bindings exist for no other), so cryptography's notice
    # that it will drop 3.8 is nothing a Jetson owner can act on; the pins keep a release that has it.
    warnings.filterwarnings("ignore", message="Python 3.8 is no longer supported", module="jetfleet")
