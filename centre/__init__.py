"""The command centre (barrier-centre): many crossings watched through their MQTT publication, and
group lockdowns ordered, signed (protocol.py)."""
