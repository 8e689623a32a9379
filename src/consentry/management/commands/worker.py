"""`consentry worker`: the database task worker that dispatches deliveries."""

from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand


class Command(DbWorkerCommand):
    help = "Dispatch deliveries: run the database task worker (any number may run at once)."
