from replaybook.cli import main

main()
