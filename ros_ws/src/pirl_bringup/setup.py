from glob import glob

from setuptools import setup

package_name = "pirl_bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        (f"share/{package_name}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="pirl developers",
    maintainer_email="dev@pirl.dev",
    description="Launch files and arm configs to run a pirl engine on an arm (or the ManiSkill sim arm).",
    license="Apache-2.0",
)
