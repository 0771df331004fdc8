from taskmgmt_deploy.cli import main

main()
