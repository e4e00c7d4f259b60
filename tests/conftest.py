import os
import sys

sys.path.insert(0, os.path.dirname(__file__))  # the test-side writers (idx_writer) import as top-level modules
