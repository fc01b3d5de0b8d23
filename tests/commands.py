"""How the tests start the ``fastmlp`` command in a child process."""

import sys

#: ``python -m fastmlp`` with Python's own Ctrl-C handler. A child inherits an ignored SIGINT
#: (as a shell gives its background jobs: ``pytest &``), and Python then installs no handler;
#: the Ctrl-C tests must not depend on how the test run was started.
INTERRUPTIBLE_FASTMLP = [
    sys.executable, "-c",
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from fastmlp.cli import main; sys.exit(main())",
]
