from clinsum.cli import main

main()
