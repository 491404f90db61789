from launch.action import Action

class ReadyToTest(Action):
    def __init__(self) -> None: ...
