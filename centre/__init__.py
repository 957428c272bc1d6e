"""The command centre: many crossings watched through their MQTT publication (barrier-centre)."""
