from sharpeyes.cli import main

main()
