"""``python -m llm_gateway`` runs the CLI, same as the ``llm-gateway`` script."""

from llm_gateway.cli import main

if __name__ == "__main__":
    main()
