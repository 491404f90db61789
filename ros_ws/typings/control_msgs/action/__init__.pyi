# control_msgs/action/FollowJointTrajectory (humble), the fields pirl sets and reads.
from builtin_interfaces.msg import Duration
from trajectory_msgs.msg import JointTrajectory

class FollowJointTrajectory:
    class Goal:
        trajectory: JointTrajectory
        goal_time_tolerance: Duration
        def __init__(self, trajectory: JointTrajectory | None = None,
                     goal_time_tolerance: Duration | None = None) -> None: ...

    class Result:
        SUCCESSFUL: int
        error_code: int
        error_string: str

    class Feedback:
        joint_names: list[str]
