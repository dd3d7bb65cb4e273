from atsboost.cli import main

main()
