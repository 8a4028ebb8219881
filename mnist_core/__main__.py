import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while Python is still loading the command: nothing has started
    print("cancelled", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
