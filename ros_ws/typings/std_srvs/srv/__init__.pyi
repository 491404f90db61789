# std_srvs/srv/Trigger and SetBool (humble).
class Trigger:
    class Request:
        def __init__(self) -> None: ...

    class Response:
        success: bool
        message: str
        def __init__(self, success: bool = False, message: str = "") -> None: ...

class SetBool:
    class Request:
        data: bool
        def __init__(self, data: bool = False) -> None: ...

    class Response:
        success: bool
        message: str
        def __init__(self, success: bool = False, message: str = "") -> None: ...
