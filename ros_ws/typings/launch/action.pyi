from launch import LaunchDescriptionEntity

class Action(LaunchDescriptionEntity):
    def __init__(self, *, condition: object | None = None) -> None: ...
