from tollway.cli.main import main

main()
