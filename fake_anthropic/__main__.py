"""`python -m fake_anthropic --host 0.0.0.0 --port 8080 ...`: the fake as a server process."""

from fake_anthropic.server import main

main()
