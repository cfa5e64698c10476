import sys
from pathlib import Path

# executor_jobs.py and executor_apps.py must be importable by name: worker processes
# unpickle job functions by module path (spawned children receive this sys.path)
sys.path.insert(0, str(Path(__file__).parent))
