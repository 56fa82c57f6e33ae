"""``python -m echoloc_ros.cli``: the `echoloc` command."""
from echoloc_ros.cli import main

raise SystemExit(main())
