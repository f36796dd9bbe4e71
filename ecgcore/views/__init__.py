"""What the app's pages (and the CLI's predict, explain and answer commands) show: views over the
run store and the engine. The engine (data, models, transfer, train, evaluate, runs, jobs)
never imports this package."""
