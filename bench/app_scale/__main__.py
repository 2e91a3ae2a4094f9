from bench.app_scale.run import main

main()
