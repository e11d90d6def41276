"""``python -m opus_dred.cli``: the same tool as the ``opus-dred`` command."""

from opus_dred.cli import main

main()
