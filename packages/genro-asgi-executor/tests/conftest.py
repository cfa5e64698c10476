import sys
from pathlib import Path

# jobs.py and apps.py must be importable by name: worker processes unpickle job functions
# by module path (spawned children receive this sys.path)
sys.path.insert(0, str(Path(__file__).parent))
