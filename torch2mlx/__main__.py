from torch2mlx.cli import main

main()
