from setuptools import setup

package_name = "pirl_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="pirl developers",
    maintainer_email="dev@pirl.dev",
    description="ROS 2 nodes around pirl's deploy package: camera, policy, executor, simulated arm.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "camera_node = pirl_ros.camera_node:main",
            "policy_node = pirl_ros.policy_node:main",
            "executor_node = pirl_ros.executor_node:main",
            "sim_arm_node = pirl_ros.sim_arm_node:main",
        ],
    },
)
