from lbp_benefit.cli import main

main()
