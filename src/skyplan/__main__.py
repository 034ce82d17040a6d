from skyplan.cli.main import main

main()
