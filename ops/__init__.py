"""Floor 4: the `vigil` CLI, embedded services, supervisor, migrations, status and inspection."""
