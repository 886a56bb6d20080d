from tmctl.cli.app import main

main()
