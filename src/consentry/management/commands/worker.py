"""`consentry worker`: the database task worker that dispatches deliveries."""

from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand

from consentry.checks import TAG


class Command(DbWorkerCommand):
    help = "Dispatch deliveries: run the database task worker (any number may run at once)."
    # The product's own refusals (demo secrets) still stop it; Django's checks of the URLs and
    # the web API are for `serve`, and importing them would double the worker's start-up.
    requires_system_checks = [TAG]

    def handle(self, *args, **options):
        from consentry.conversations.reader import Reader
        from consentry.messaging.recovery import Sweeper
        from consentry.web.demo import startup_banner

        if banner := startup_banner():
            self.stderr.write(banner)
        # Beats for this worker and sweeps for what stopped workers left open.
        sweeper = Sweeper(options["worker_id"])
        sweeper.start()
        reader = Reader()  # reads received texts, apart from the task queue
        if options["batch"]:
            reader.read_unread()  # what is unread now, then the tasks (their answers among them), then stop
        else:
            reader.start()
        try:
            return super().handle(*args, **options)
        finally:
            reader.stop()
            sweeper.stop()
