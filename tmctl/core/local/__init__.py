"""The local engine, one concern: which engine answers (`emulator.probe`), the
embedded MiniStack tmctl starts and stops (`emulator`), LocalStack through the
Docker SDK (`localstack`), and the limits a stack gets on a laptop (`limits`)."""
